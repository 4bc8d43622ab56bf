"""WhatsApp Web: page knowledge (page.py, messaging.py), the page driver and the session manager.

Import the submodules directly (``workers.whatsapp.sessions``); this package stays light
so importing ``workers.whatsapp.page`` does not pull Playwright in.
"""
