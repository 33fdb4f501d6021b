//! Choosing a pool for a new queue: weighted rendezvous hashing.
//!
//! Every candidate pool scores `weight / -ln(h)` where `h` is a hash of
//! (project, queue, pool) mapped into (0, 1); the highest score wins. The
//! choice is deterministic, proportional to the weights, and adding a pool
//! only takes queues whose new best is that pool — though the placement
//! record, written once, is what actually pins a queue.

use std::hash::Hasher;

use twox_hash::XxHash64;

use crate::model::Pool;

/// Returns the pool a new queue should be placed on, among `candidates`
/// (pools with weight 0 are never chosen). `None` when no pool qualifies.
pub fn choose<'a>(candidates: &'a [Pool], project: &str, queue: &str) -> Option<&'a Pool> {
    candidates
        .iter()
        .filter(|pool| pool.weight > 0)
        .map(|pool| (score(pool, project, queue), pool))
        .max_by(|(left, _), (right, _)| left.total_cmp(right))
        .map(|(_, pool)| pool)
}

fn score(pool: &Pool, project: &str, queue: &str) -> f64 {
    let mut hasher = XxHash64::with_seed(0x5a51_0a17);
    for part in [project, queue, pool.name.as_str()] {
        hasher.write(part.as_bytes());
        hasher.write_u8(0xff);
    }
    // Map the hash into (0, 1), excluding both ends.
    let unit = ((hasher.finish() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    pool.weight as f64 / -unit.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, weight: u64) -> Pool {
        Pool {
            name: name.into(),
            uri: format!("redis://{name}"),
            weight,
            flavor: None,
            options: serde_json::Value::Null,
        }
    }

    #[test]
    fn choices_are_deterministic_and_skip_weight_zero() {
        let pools = vec![pool("a", 100), pool("b", 0)];
        for i in 0..100 {
            let queue = format!("q{i}");
            assert_eq!(choose(&pools, "p", &queue).unwrap().name, "a");
        }
        assert!(choose(&[pool("z", 0)], "p", "q").is_none());
        assert!(choose(&[], "p", "q").is_none());
        let pools = vec![pool("a", 1), pool("b", 1), pool("c", 1)];
        let first = choose(&pools, "p", "q").unwrap().name.clone();
        let reversed: Vec<Pool> = pools.iter().rev().cloned().collect();
        assert_eq!(
            choose(&reversed, "p", "q").unwrap().name,
            first,
            "order-independent"
        );
    }

    #[test]
    fn shares_follow_weights() {
        let pools = vec![pool("a", 300), pool("b", 100)];
        let total = 20_000;
        let on_a = (0..total)
            .filter(|i| choose(&pools, "p", &format!("queue-{i}")).unwrap().name == "a")
            .count();
        let share = on_a as f64 / total as f64;
        assert!((0.72..0.78).contains(&share), "share of a: {share}");
    }

    #[test]
    fn adding_a_pool_moves_only_queues_it_wins() {
        let before = vec![pool("a", 100), pool("b", 100)];
        let mut after = before.clone();
        after.push(pool("c", 100));
        for i in 0..2_000 {
            let queue = format!("q{i}");
            let old = choose(&before, "p", &queue).unwrap().name.clone();
            let new = choose(&after, "p", &queue).unwrap().name.clone();
            assert!(
                new == old || new == "c",
                "{queue} moved from {old} to {new}"
            );
        }
    }
}
