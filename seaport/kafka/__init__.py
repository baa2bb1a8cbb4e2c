"""seaport's Kafka layer: the local broker, the contract's topics, and one small client interface.

Public: `broker.Broker`, `broker.ensure_jars`, `topics.TOPICS`, `topics.topic_name`,
`topics.create_topics`, `topics.message_key`, `clients.make_client`, `clients.Record`,
`clients.KafkaClient`. Modules import their Kafka library lazily, so `seaport --help` stays fast.
"""
