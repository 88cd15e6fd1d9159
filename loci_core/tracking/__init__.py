"""Online tracking for a live camera: slots turned into entities with stable ids, hidden entities carried
with the objects covering them, and the rules that pick the snitch's slot."""
