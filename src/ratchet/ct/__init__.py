"""``ratchet.ct``: the continuous-training loop — policies, the promotion gate, the
controller. So far: the gate (``ratchet.ct.gate``)."""
