"""A participant's side: download a release (checked), check and submit a file, list one's submissions."""
