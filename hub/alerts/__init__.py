"""Alerts: rules evaluated on the bus, a lifecycle per (rule, device), notifications.

`conditions` declares what a rule can watch, `engine` decides (pure logic),
`worker` feeds it from the bus and stores the outcome, `notifier` sends webhooks
and e-mails, `service` is what the API uses.
"""
