"""History imports: a household's Last.fm scrobbles and ListenBrainz export become listens."""
