"""Places in Sweden that every feature can name: the municipalities (kommuner) and counties
(län) with their codes, from Statistics Sweden (SCB). Reference data; imports no other package."""
