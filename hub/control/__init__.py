"""Control: operators' commands, signed by the hub, sent on their own MQTT connection.

`ControlService` builds, signs, stores and audits each command, then publishes it
through a `CommandPublisher` (in production `MqttCommandPublisher`, a dedicated
connection of the API process, so a stop never waits behind ingest or bulk
traffic). The devices' acks, stored by the worker, advance each command's status.
"""
