-- A small articles table for the quickstart and the model tests: five short
-- texts written for lmgen's own use.
DROP TABLE IF EXISTS articles;
CREATE TABLE articles (id int PRIMARY KEY, title text, body text, summary text);
INSERT INTO articles (id, title, body) VALUES
(1, 'Library hours',
 'The city library will stay open until nine in the evening on weekdays starting next month. '
 'The council approved the longer hours after a survey showed that most visitors work during the day. '
 'Extra staff will be hired for the evening shifts, and the reading room will get new lamps.'),
(2, 'Bridge repairs',
 'Repairs on the old river bridge begin on Monday and are expected to last six weeks. '
 'During the work only one lane will be open to cars, while cyclists and pedestrians can use a temporary path. '
 'The engineers say the steel supports are rusting and must be replaced before winter.'),
(3, 'School garden',
 'Pupils at the primary school planted a vegetable garden behind the gym this spring. '
 'They grow tomatoes, beans and pumpkins, and the harvest is used in the school kitchen. '
 'Teachers say the children now eat more vegetables and have learned how plants grow.'),
(4, 'Database release',
 'A new version of the open source database adds faster parallel queries and better compression of large tables. '
 'Upgrading from the previous version needs no dump and restore. '
 'The developers thanked more than two hundred contributors from around the world.'),
(5, 'Heat wave',
 'Temperatures are forecast to reach thirty-eight degrees this weekend, the hottest days of the year so far. '
 'Health officials advise people to drink water often, stay in the shade at midday and check on elderly neighbours. '
 'Public pools will stay open two hours longer.');
