"""seaport's Kafka layer, what production runs: the contract's topics and one small client interface.

Public: `topics.TOPICS`, `topics.topic_name`, `topics.create_topics`, `topics.message_key`,
`clients.make_client`, `clients.producer_config`, `clients.Record`, `clients.KafkaClient`. It
imports no command code (`seaport.cli`, `seaport.options`); modules import their Kafka library
lazily, so `seaport --help` stays fast. The local broker is a developer tool
(`seaport.devtools.broker`).
"""
