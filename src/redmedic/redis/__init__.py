"""What redmedic knows about Redis: redis.conf read and edited as Redis reads it
(`redisconf`), the probes that ask a server like a client does (`probes`), and the rules that
name a cause from the facts (`diagnosis`), with whether a memory limit lets writes through
and which one would (`memory`).

Pure knowledge and client code: it imports the model and connections, never the steps.
"""
