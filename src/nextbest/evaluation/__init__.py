"""Evaluation: business metrics with intervals and the CRM evaluation."""
