"""Process managers: the token purchase saga driver and the token contract deployer."""
