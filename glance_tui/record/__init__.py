"""The run's record: what a change board approves beforehand (``plan --format md``) and accounts
for afterwards (``report``), built from the journal alone so it works after a crash, on a copied
journal file, without the cluster and without any secret."""
