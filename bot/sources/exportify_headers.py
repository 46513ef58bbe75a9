"""Exportify.app's column names in the languages it exports in.

exportify.app (github.com/watsonbox/exportify) writes its CSV header in the browser's language
(i18next language detection, 12 languages since August 2024), so a member in Paris attaches a
file that starts ``"URI du titre","Nom du titre",…``. These are the labels of its
``src/i18n/locales/*/translation.json`` (2026-04), as written; :mod:`bot.sources.exportify`
normalises them like any header. English comes first; fields Exportify does not write in
English under another name (``Track Duration (ms)`` and the rest) are listed in
:data:`bot.sources.exportify.COLUMNS`.
"""

from __future__ import annotations

# field -> its labels, "|"-separated, in Exportify's order: en de es fr it nl pt sv tr el ja ar
TRANSLATED: dict[str, str] = {
    "id": (
        "Track URI|Track-URI|URI de la canción|URI du titre|URI della traccia|Nummer URI|"
        "URI da faixa|Låtens URI|Parça URI|URI κομματιού|トラックURI|رابط الأغنية (URI)"
    ),
    "name": (
        "Track Name|Track-Name|Nombre de la canción|Nom du titre|Nome della traccia|"
        "Nummernaam|Nome da faixa|Låtens namn|Parça Adı|Όνομα κομματιού|トラック名|"
        "اسم الأغنية"
    ),
    "artist_ids": (
        "Artist URI(s)|Künstler-URI(s)|URI(s) del artista|URI(s) de l'artiste|"
        "URI dell'artista|Artiest-URI|URI(s) do artista|Artistens URI|Sanatçı URI|"
        "URI καλλιτέχνη/ων|アーティストURI|روابط الفنانين (URI)"
    ),
    "artists": (
        "Artist Name(s)|Künstlername(n)|Nombre(s) del artista|Nom(s) de l'artiste|"
        "Nome dell'artista|Naam van artiest|Nome(s) do artista|Artistens namn|"
        "Sanatçı Adı|Όνομα/τα καλλιτέχνη|アーティスト名|أسماء الفنانين"
    ),
    "album_id": (
        "Album URI|Album-URI|URI del álbum|URI de l'album|URI dell'album|URI do álbum|"
        "Albumets URI|Albüm URI|URI άλμπουμ|アルバムURI|رابط الألبوم (URI)"
    ),
    "album": (
        "Album Name|Album-Name|Nombre del álbum|Nom de l'album|Nome dell'album|"
        "Naam van album|Nome do álbum|Albumets namn|Albüm Adı|Όνομα άλμπουμ|アルバム名|"
        "اسم الألبوم"
    ),
    "release_date": (
        "Album Release Date|Veröffentlichungsdatum des Albums|"
        "Fecha de lanzamiento del álbum|Date de sortie de l'album|"
        "Data di rilascio dell'album|Releasedatum van het album|"
        "Data de lançamento do álbum|Albumets releasedatum|Albüm Çıkış Tarihi|"
        "Ημερομηνία κυκλοφορίας άλμπουμ|アルバム発売日|تاريخ إصدار الألبوم"
    ),
    "image_url": (
        "Album Image URL|Album-Bild-URL|URL de la imagen del álbum|"
        "URL de l'image de l'album|URL dell'immagine dell'album|Album afbeelding-URL|"
        "URL da imagem do álbum|Albumets bild-URL|Albüm Resim URL'si|URL εικόνας άλμπουμ|"
        "アルバム画像URL|رابط صورة الألبوم"
    ),
    "duration_ms": (
        "Track Duration (ms)|Track-Dauer (ms)|Duración de la canción (ms)|"
        "Durée du titre (ms)|Durata della traccia (ms)|Nummerduur (ms)|"
        "Duração da faixa (ms)|Låtlängd (ms)|Parça Süresi (ms)|Διάρκεια κομματιού (ms)|"
        "トラックの長さ（ミリ秒）|مدة الأغنية (بالمللي ثانية)"
    ),
    "explicit": (
        "Explicit|Explizit|Explícito|Explicite|Esplicito|Expliciet|Explícita|Açık İçerik|"
        "Ακατάλληλο|明示的な内容|صريح"
    ),
    "popularity": (
        "Popularity|Beliebtheit|Popularidad|Popularité|Popolarità|Populariteit|"
        "Popularidade|Popularitet|Popülerlik|Δημοτικότητα|人気度|الشعبية"
    ),
    "added_by": (
        "Added By|Hinzugefügt von|Añadido por|Ajouté par|Aggiunto da|Toegevoegd door|"
        "Adicionado por|Tillagd av|Ekleyen|Προστέθηκε από|追加者|أضيف بواسطة"
    ),
    "added_at": (
        "Added At|Hinzugefügt am|Añadido en|Ajouté le|Aggiunto il|Toegevoegd op|"
        "Adicionado em|Tillagd vid|Eklenme Tarihi|Προστέθηκε στις|追加日時|أضيف في"
    ),
    "genres": (
        "Artist Genres|Künstler-Genres|Géneros del artista|Genres de l'artiste|"
        "Generi dell'artista|Genres van de artiest|Gêneros do artista|Artistens genrer|"
        "Sanatçı Türleri|Είδη καλλιτέχνη|アーティストジャンル|أنواع الفنان"
    ),
    "label": (
        "Label|Sello|Etichetta|Gravadora|Skivbolag|Plak Şirketi|Εταιρεία|レーベル|العلامة التجارية"
    ),
    "danceability": (
        "Danceability|Tanzbarkeit|Bailabilidad|Danseabilité|Ballabilità|Dansbaarheid|"
        "Dançabilidade|Dansbarhet|Dans Edilebilirlik|Χορευτικότητα|ダンサビリティ|قابلية الرقص"
    ),
    "energy": ("Energy|Energie|Energía|Énergie|Energia|Energi|Enerji|Ενέργεια|エネルギー|الطاقة"),
    "key": (
        "Key|Tonart|Tonalidad|Tonalité|Chiave|Toonsoort|Tonalidade|Ton|Τονικότητα|キー|المفتاح"
    ),
    "loudness": (
        "Loudness|Lautstärke|Volumen|Volume sonore|Volume|Luidheid|Ljudstyrka|"
        "Ses Seviyesi|Ένταση|ラウドネス|مستوى الصوت"
    ),
    "mode": "Mode|Modus|Modo|Modalità|Läge|Mod|Τρόπος|モード|النمط",
    "speechiness": (
        "Speechiness|Sprachanteil|Hablado|Parlabilité|Linguaggio parlato|Spraakzaamheid|"
        "Oralidade|Talighet|Konuşma Oranı|Ομιλητικότητα|スピーチ性|محتوى الكلام"
    ),
    "acousticness": (
        "Acousticness|Akustik|Acústica|Acoustique|Acustica|Akoestiek|Akustiklik|"
        "Ακουστικότητα|アコースティック性|الطابع الصوتي"
    ),
    "instrumentalness": (
        "Instrumentalness|Instrumentalität|Instrumentalidad|Instrumental|Strumentalità|"
        "Instrumentaliteit|Instrumentalidade|Instrumentalhet|Enstrümantalite|"
        "Οργανοκεντρικότητα|インストゥルメンタル性|الطابع الآلي"
    ),
    "liveness": (
        "Liveness|Lebendigkeit|Vivacidad|Vivacité|Vivacità|Levendigheid|Vivacidade|"
        "Livlighet|Canlılık|Ζωντάνια|ライブ感|الحيوية"
    ),
    "valence": (
        "Valence|Valenz|Valencia|Valenza|Valentie|Valência|Valens|Duygusallık|Θετικότητα|"
        "感情値|الإيجابية"
    ),
    "tempo": "Tempo|Ρυθμός|テンポ|الإيقاع",
    "time_signature": (
        "Time Signature|Taktart|Compás|Mesure|Battuta|Maatstreep|Compasso|Ölçü İşareti|"
        "Μέτρο|拍子|توقيع الزمن"
    ),
}
