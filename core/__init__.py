"""What `financing` and `notifications` share: field encryption, fault points, backoff,
leases and queueing by task name. Depends on Django and Celery only, never on our apps."""
