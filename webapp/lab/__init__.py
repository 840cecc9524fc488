"""The veterinary pathology lab: reception, reports, work orders."""
