"""Scripts that make the shipped assets: `python -m tutorial_sae.build.<name>`; nothing imports them."""
