"""Twilio in production: the SMS sender on the partner HTTP kit (`SMS_BACKEND =
"twilio_bridge.client.TwilioBackend"`). Delivery reports come back to
`notifications.views`, verified with `notifications.sms.twilio_signature`."""
