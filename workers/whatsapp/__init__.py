"""WhatsApp Web: page knowledge (page.py), the page driver and the live-session manager.

Import the submodules directly (``workers.whatsapp.sessions``); this package stays light
so importing ``workers.whatsapp.page`` does not pull Playwright in.
"""
