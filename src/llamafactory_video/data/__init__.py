"""Extra dataset columns, processors and collators of the plugin stages."""
