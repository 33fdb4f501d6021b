-- ARGV: claim id. Releases the claim; its messages are free at once.
drop_claim(ARGV[1])
return 'ok'
