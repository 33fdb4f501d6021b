-- ARGV: id. Deletes the subscription if present.
remove_sub(ARGV[1], load_sub(ARGV[1]))
return 'ok'
