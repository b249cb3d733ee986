"""The keyed table: a virtualised view of models keyed by stable ids (`widget.KeyedTable`).

`widget.py` holds the widget (rows, columns, sizes, bindings), `lines.py` how it is drawn,
`cursor.py` its keyed selection and cursor, `rows.py` the row order it looks rows up in.
"""
