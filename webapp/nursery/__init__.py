"""The nursery's potting lots: table filters, CSV import, demo data."""
