"""``glance-tui init``: a first config written from what the load balancers and the nodes say.

``lbread`` reads each HAProxy instance (backends, servers, their addresses), ``versions`` asks
each server address for Glance's ``/versions``, ``nodeprobe`` reads each node over SSH (its kind,
release and Glance database), ``discover`` turns those answers into decisions and questions,
and ``render`` writes them as a commented TOML config that is validated before it is written.
Probing never changes anything; writing is the CLI's (through :func:`glance_tui.outfile.write_output`).
"""
