"""The loopback reference API: a local checkpoint behind SiliconFlow's wire format on 127.0.0.1,
the offline stand-in for the hosted API (the demo's reference column, ``check`` and ``align``
without a key). ``collect`` and ``check`` start it when ``reference.enabled``."""
