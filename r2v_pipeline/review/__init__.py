"""``r2v review``: the takes of each shot side by side on a loopback page; what a
person picks, approves, rejects and notes lands in the episode's selects file."""
