-- Deletes the queue with its messages, claims and pending dead letters.
-- Subscriptions are kept (Zaqar keeps them until their TTL ends).
redis.call('UNLINK', K_Q, K_MSGS, K_FREE, K_EXP, K_CLAIMED, K_INFO, K_BODY, K_CLAIMS, K_CEXP, K_DEAD)
return 1
