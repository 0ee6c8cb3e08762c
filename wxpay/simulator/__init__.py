"""An offline WeChat: the simulator speaks Pay V2, OAuth and token APIs."""
