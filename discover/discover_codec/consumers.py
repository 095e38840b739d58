"""Who receives a DISCOVER stream and who looks at its decode (no PyTorch: the plan reads it).

A *consumer* is what a decoder receives: one task's part, or ``human`` (all of ŷ). A *viewer*
is who looks at the decoded image: a person (``human``: the human metrics) or a machine-vision
task model (``machine``); the viewer decides how a stream is decoded (the composition's
sampling steps), the consumer which bits are decoded.
"""

HUMAN = "human"
MACHINE = "machine"
VIEWERS = (HUMAN, MACHINE)
