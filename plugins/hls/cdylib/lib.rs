camrouter_plugin_api::export_plugin!(camrouter_hls::module);
