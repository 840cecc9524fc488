"""PDF building blocks shared by every document kind: fonts, vector QR codes, label layouts."""
