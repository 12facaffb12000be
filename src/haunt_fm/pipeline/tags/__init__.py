"""Tags: what Last.fm's listeners say about each track (the tags stage), and the vibes grounded in them."""
