//! Request and response bodies of the MIMI endpoints (-06 §4).
