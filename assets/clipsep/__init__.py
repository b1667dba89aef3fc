"""CLIPSep (thesis ch. 6): text-queried separation learned from videos, with its NIT and PIT variants and SDR evaluation."""
