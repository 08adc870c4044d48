"""The server-rendered pages: triggers (views, forms, charts), deliveries (deliveries), the operators' cluster page
(ops), and their URLs (urls, ops_urls, included by relayweb/urls.py)."""
