"""The network lab: one kit that ``tests/`` and ``bench/`` both import.

- :mod:`natlab.lab`: hosts in Linux network namespaces behind a switch;
- :mod:`natlab.fixtures`: the pytest plugin (``lab``, ``lab_host``, Chromium in a host,
  the CI rule for skips);
- :mod:`natlab.servers`: a real Confide server, in-process or as a process;
- :mod:`natlab.coturn`: a real coturn;
- :mod:`natlab.processes`: child processes, free ports, polling with a deadline, /proc stats;
- :mod:`natlab.stats`: summaries of repeated measurements.
"""
