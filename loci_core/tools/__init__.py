"""Tools around a trained model: latents saved and explored (`loci save`, `loci playground`), images and
videos of what the model sees, and export."""
