//! Room state components in the MLS `app_data_dictionary` (-06 §6, room policy).
