"""Remote mode: the workspace's stores over HTTP to a `ratchet server`."""
