"""The network lab: one kit that ``tests/`` and ``bench/`` both import.

- :mod:`natlab.lab`: hosts in Linux network namespaces behind a switch;
- :mod:`natlab.fixtures`: the pytest plugin (``lab``, ``lab_host``, Chromium in a host,
  the CI rule for skips);
- :mod:`natlab.servers`: a real Confide server, in-process or as a process;
- :mod:`natlab.coturn`: a real coturn;
- :mod:`natlab.processes`: child processes, free ports, polling with a deadline, /proc stats;
- :mod:`natlab.stats`: summaries of repeated measurements;
- :mod:`natlab.nat`: the internet and NAT routers of each kind (RFC 4787), sites behind them;
- :mod:`natlab.matrix`: pairs of lab peers (:mod:`natlab.peer`) across them, TURN off and on,
  and the issue's expectations; :mod:`natlab.report` its table, JSON and heat map;
  ``python -m natlab`` (``make natlab``) the full matrix.
"""
