"""What `financing` and `notifications` share: field encryption, fault points, backoff,
leases, queueing by task name, and what a request may bring in (`inbound`). Depends on
Django and Celery (and DRF, for `inbound` only), never on our apps."""
