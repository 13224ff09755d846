"""Outgoing webhooks: events written in the same transaction as the state change they report
(transactional outbox), delivered signed per the Standard Webhooks specification, at least once,
with backoff, one delivery per task, and only to public addresses."""
