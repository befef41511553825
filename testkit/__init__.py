"""The one test harness: local servers, stand-ins, service launchers, waits and message builders."""
