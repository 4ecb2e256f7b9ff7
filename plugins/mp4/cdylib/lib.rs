camrouter_plugin_api::export_plugin!(camrouter_mp4::module);
