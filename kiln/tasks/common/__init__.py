"""Code two or more tasks share, in one place (DESIGN.md: "modality is not objective").

A task never imports another task's folder: what it needs from one lives here, and both import it from here.

- `tabular`: CSV / TSV / Parquet files read as text cells (encoding and delimiter sniffed, missing spellings);
  the table and series sources read through it.
- `audit_page`: the style sheet and histogram charts of a self-contained audit.html.
- `parity`: top-1 agreement of an export's class probabilities with the Keras model's.
"""
