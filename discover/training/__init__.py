"""Training of the small models the embedded default uses (same code paths as full scale)."""
