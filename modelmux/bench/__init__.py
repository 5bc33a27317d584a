"""The ``modelmux bench`` load generator: a cheap keep-alive HTTP/1.1 client and its statistics.

``wire`` frames requests and responses (sans-I/O), ``stats`` holds histograms, ``client`` runs
the load on asyncio/uvloop, ``local`` starts ``modelmux serve`` processes for ``--self``,
``procfs`` reads their memory, ``report`` renders results. The CLI is ``modelmux.cli.bench``.
"""
