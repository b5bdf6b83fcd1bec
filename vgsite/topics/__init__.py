"""One module per topic; vgsite.registry.TOPICS lists them in reading order."""
