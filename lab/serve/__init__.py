"""Serving the lab to a room: one lab process per person, over SSH (lab.serve.ssh) or in a
browser (lab.serve.web); lab.serve.child is the process each of them runs."""
