"""The live WebSocket feed: bus records → scoped, filtered messages to every dashboard socket.

`feed.LiveFeed` reads the bus, `fanout.Fanout` hands each encoded message to the
subscribers' bounded queues, `hub.api.routes.live` serves `/api/v1/ws`.
"""
