PLUGIN = "x"
