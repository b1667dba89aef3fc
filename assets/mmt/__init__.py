"""The Multitrack Music Transformer (thesis ch. 3): codes from notes, training, generation in three modes, and evaluation."""
