//! `--chart`: the latency distribution of each operation as an SVG line
//! chart (latency against percentile, percentiles on HdrHistogram's
//! log scale so the tail is visible).

use std::fmt::Write as _;

use super::report::Report;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
const MARGIN: f64 = 60.0;
/// Percentiles plotted (the last one stands for the maximum).
const QUANTILES: [f64; 10] = [
    0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 0.99999,
];
const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// Position of quantile `q` on the x axis, 0..=1: log10 of 1/(1-q) over
/// five nines.
fn x_of(q: f64) -> f64 {
    ((1.0 / (1.0 - q).max(1e-5)).log10() / 5.0).clamp(0.0, 1.0)
}

/// The chart's SVG text.
pub fn svg(report: &Report) -> String {
    let series: Vec<(&str, Vec<(f64, f64)>)> = report
        .operations
        .iter()
        .map(|(name, op)| {
            let points = QUANTILES.iter().map(|q| (x_of(*q), op.ms(*q))).collect();
            (*name, points)
        })
        .collect();
    let top = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(_, ms)| *ms))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let plot_w = WIDTH - 2.0 * MARGIN;
    let plot_h = HEIGHT - 2.0 * MARGIN;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">Latency by percentile — {} ({:.1} s)</text>\n",
        WIDTH / 2.0,
        escape(&report.url),
        report.elapsed.as_secs_f64()
    );
    // Axes and grid.
    let _ = writeln!(
        svg,
        "<line x1=\"{MARGIN}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/>\
         <line x1=\"{MARGIN}\" y1=\"{MARGIN}\" x2=\"{MARGIN}\" y2=\"{0}\" stroke=\"black\"/>",
        HEIGHT - MARGIN,
        WIDTH - MARGIN
    );
    for (label, q) in [
        ("0%", 0.0),
        ("90%", 0.9),
        ("99%", 0.99),
        ("99.9%", 0.999),
        ("99.99%", 0.9999),
        ("max", 0.99999),
    ] {
        let x = MARGIN + x_of(q) * plot_w;
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{MARGIN}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            HEIGHT - MARGIN,
            HEIGHT - MARGIN + 18.0
        );
    }
    for step in 0..=5 {
        let ms = top * f64::from(step) / 5.0;
        let y = HEIGHT - MARGIN - plot_h * f64::from(step) / 5.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{MARGIN}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{ms:.1} ms</text>",
            WIDTH - MARGIN,
            MARGIN - 6.0,
            y + 4.0
        );
    }
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(x, ms)| {
                format!(
                    "{:.1},{:.1}",
                    MARGIN + x * plot_w,
                    HEIGHT - MARGIN - plot_h * ms / top
                )
            })
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\">{name}</text>",
            path.join(" "),
            MARGIN + 10.0,
            MARGIN + 16.0 * (i as f64 + 1.0)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::super::report::OpStats;
    use super::*;

    #[test]
    fn every_operation_gets_a_line() {
        let mut post = OpStats::default();
        post.record(Duration::from_millis(3), Ok(1));
        let report = Report {
            url: "http://a<b".into(),
            elapsed: Duration::from_secs(1),
            settings: serde_json::json!({}),
            operations: BTreeMap::from([("post", post.clone()), ("claim", post)]),
            verify: None,
        };
        let svg = svg(&report);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("http://a&lt;b"));
        assert!(svg.ends_with("</svg>\n"));
    }
}
