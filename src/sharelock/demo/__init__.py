"""The embedded demo: everything on one machine, plus a small partner site to start a share."""
