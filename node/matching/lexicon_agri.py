"""Concept lexicon, part 1: agrifood and marine (crops, livestock, aquaculture, post-harvest).

Hand-written domain knowledge, not tuned to listing ids: each concept lists the words a
technology's supplier uses and the words a farmer, processor or official would use to
describe the problem it solves. Local-language names of the main commodities are included
so that a title in Vietnamese, Thai, Indonesian or Chinese still meets the English side.
Syntax: see ``node.matching.concepts``.
"""

from __future__ import annotations

AGRI_CONCEPTS: dict[str, str] = {
    # --- commodities and organisms ---------------------------------------------------
    "shrimp": "shrimp|prawn|vannamei|penaeus|monodon|whiteleg|tiger prawn|udang|hipon|tom su"
    "|tom the|กุ้ง|虾|对虾",
    "tilapia": "tilapia|oreochromis|pla nin|nila|ปลานิล|罗非鱼",
    "milkfish": "milkfish|bangus|chanos|bandeng",
    "pangasius": "pangasius|tra fish|basa fish|catfish|ca tra|patin",
    "grouper_marine_fish": "grouper|kerapu|pompano|cobia|barramundi|seabass|sea bass|snapper"
    "|marine fish|finfish",
    "shellfish": "oyster|mussel|clam|bivalve|spat|shellfish|cockle|scallop|crassostrea|蚝|牡蛎",
    "lobster_crab": "lobster|phyllosoma|panulirus|crab|scylla",
    "seaweed": "seaweed|kappaphycus|eucheuma|gracilaria|carrageenan|cottonii|agar|thalli"
    "|thallus|rumput laut|rong bien|algae farm|海藻",
    "coral_reef": "coral|reef|珊瑚",
    "mangrove": "mangrove|bakau|rừng ngập mặn|红树林",
    "rice": "rice|paddy|padi|glutinous|sticky rice|jasmine rice|indica|lua|gao|beras|bigas"
    "|palay|ข้าว|稻|大米|ເຂົ້າ|အင်ဒီကာ",
    "cassava": "cassava|tapioca|manioc|yuca|cassava chip|singkong|ubi kayu|kamoteng kahoy"
    "|มันสำปะหลัง|木薯|ມັນຕົ້ນ",
    "maize": "maize|corn|jagung|mais|ข้าวโพด|玉米",
    "sugarcane": "sugarcane|sugar cane|cane|tebu|อ้อย|甘蔗",
    "oil_palm": "oil palm|palm oil|ffb|fresh fruit bunch|efb|empty fruit bunch|pome|cpo"
    "|kelapa sawit|sawit|palm mill|油棕|棕榈",
    "rubber": "rubber|latex|hevea|tapper|cao su|karet|ยางพารา|橡胶",
    "coconut": "coconut|copra|coir|nata de coco|kelapa|niyog|buko|มะพร้าว|椰子",
    "durian": "durian|monthong|musang king|sau rieng|ทุเรียน|榴莲",
    "mango": "mango|xoai|mangga|มะม่วง|芒果",
    "tropical_fruit": "tropical fruit|longan|jackfruit|mangosteen|rambutan|lychee|litchi"
    "|dragon fruit|pitaya|papaya|pineapple|avocado|durian|mango|fresh fruit|orchard|水果",
    "banana": "banana|cavendish|plantain|pisang|saging|chuoi|กล้วย|香蕉",
    "coffee": "coffee|arabica|robusta|ca phe|kopi|กาแฟ|咖啡",
    "cocoa": "cocoa|cacao|kakao|chocolate",
    "tea": "tea|laphet|che xanh|green tea|dark tea|茶",
    "pepper_spice": "pepper|peppercorn|piperine|lada|tieu|spice|chilli|chili",
    "pulses": "pulse|mung bean|pigeon pea|black gram|chickpea|lentil|soybean|bean|legume",
    "pig": "pig|swine|hog|piggery|sow farm|pork|porcine|heo|babi|หมู|猪",
    "poultry": "chicken|poultry|broiler|layer hen|duck|egg farm",
    "cattle_dairy": "cattle|cow|dairy|buffalo|goat|beef",
    "mushroom": "mushroom|rice straw|straw+substrate|volvariella|oyster mushroom|shiitake"
    "|spawn bag|nam rom|蘑菇",
    "bee_honey": "honey|bee|stingless bee|kelulut|beekeep|apiary|hive",
    "silk_sericulture": "silk|silkworm|sericulture|mulberry|cocoon",
    "cashew": "cashew|cnsl|cardanol",
    "sugar_palm_sap": "palm sugar|sap sugar|coconut sugar|toddy|nipa|borassus|thnot|arenga"
    "|sap collection|coconut sap|sugar palm|gula",
    "herbal_medicinal_plant": "herbal|medicinal plant|medicinal herb|herb|botanical"
    "|phytopharmaceutical|andrographis|tongkat ali|eurycoma|jamu|fah talai jone"
    "|long jack|plant extract|herbal raw material",
    # --- crops: inputs, protection, agronomy -------------------------------------------
    "crop_fungal_disease": "leaves+spots|leaves+black|leaf+spot|mould+leaves|plants+wither"
    "|disease+spread+plants|stem+rot|leaves+brown|fruit+rot+tree|fungus|fungal|fungi|blight"
    "|wilt|blast|canker|anthracnose"
    "|mildew|phytophthora|fusarium|magnaporthe|neoscytalidium|root rot|stem rot|leaf spot"
    "|panama disease|tr4|tropical race|dieback|plant+die|tree+die|plants+rot|leaves+yellow"
    "|wilting|fungicide|trichoderma|soil-borne|soilborne",
    "crop_virus_disease": "leaves+curl|yellow+mosaic|plants+stunt|bunchy|virus|viral|mosaic"
    "|bunchy top|phytoplasma|white leaf|virus-free"
    "|virus indexing|leaf curl|stunted|vector insect|cmd|sri lankan cassava mosaic",
    "resistant_variety": "resistant variety|tolerant variety|resistance gene|resistant line"
    "|breeding|marker-assisted|new variety|improved variety|cultivar|advanced line"
    "|variety+resist|varieties+resist|varieties+tolerant|variety+tolerant|seed+resist"
    "|germplasm|clone|somaclonal|hybrid",
    "clean_planting_material": "seedling|plantlet|tissue culture|micropropagation|nursery"
    "|clean seed|stem cutting|planting material|explant|virus-free|seed cane|meristem"
    "|mother plant|seedstock|seed system|propagation",
    "insect_pests": "insects+destroy|bugs|worms+eat|caterpillars|infestation|hopper"
    "|insect damage|pest|insect|planthopper|armyworm|borer|caterpillar|weevil|fruit fly"
    "|locust|aphid|thrip|mite|light trap|integrated pest management|ipm|insects+eat"
    "|bugs+crop|pest outbreak|pest monitoring|pest identification",
    "crop_spraying": "spraying|sprayer|pesticide|agrochemical|knapsack|plant protection"
    "|spray+field|spray+crop|spray drone|crop spraying",
    "soil_salinity": "salinity|saline|salt intrusion|saltwater intrusion|salinity intrusion"
    "|salt-tolerant|salt tolerant|salt+field|seawater+field|sea water+rice|salty+soil"
    "|salty+water+crop|brackish+field|salt+paddy|nacl",
    "soil_fertility": "soil acidity|acid soil|acidic soil|soil ph|liming|soil fertility"
    "|degraded soil|soil amendment|soil conditioner|biochar|humic|soil health|poor soil"
    "|soil+exhausted|yield+declining|gypsum|soil organic",
    "organic_fertiliser": "compost|organic fertilizer|organic fertiliser|manure|biofertilizer"
    "|bio-fertilizer|vermicompost|windrow|fertilizer substitute|bio-organic|co-composting"
    "|waste+fertilizer|residue+fertilizer",
    "irrigation_water": "irrigation|water saving|alternate wetting and drying|awd|drip"
    "|water level|drought|water shortage|dry spell|irrigate|water management|field water"
    "|paddy water",
    "land_levelling": "land level|land levelling|land leveling|laser level|leveling+land"
    "|levelling+land|uneven field"
    "|field+uneven|drainage+field",
    "crop_establishment": "transplanter|transplanting|transplant|direct seeding"
    "|sowing|seeder|mat nursery|nursery tray|planting machine",
    "harvest_mechanisation": "harvester|harvest tool|pole cutter|sickle|combine harvester"
    "|mechanization|mechanisation|mechanised|mechanized|cut+bunches|reach+tall|tall+palm"
    "|chopper|cutter",
    "labour_shortage": "labour shortage|labor shortage|labour productivity|labor productivity"
    "|labour cost|labor cost|few worker|fewer worker|worker shortage|shortage+worker"
    "|shortage+labor|shortage+labour|workers+leave|workers+scarce|young people+leave"
    "|hard+find+workers|hard+find+labour|hard+find+labor|ageing farmer|aging farmer"
    "|fewer tapper|labour saving|labor saving|replaces+manual|one+operator|manpower",
    "rubber_tapping": "tapping|tapper|latex yield|yield stimulation|ethephon|ethylene gas"
    "|stimulation+rubber|tap+tree|tapping system|tapping frequency|micro-tapping|rrim",
    "latex_processing": "latex concentrate|field latex|centrifug|ammonia-free|deproteinization"
    "|deproteinised|deproteinized|low-allergen|hypoallergenic|latex allergy|extractable protein"
    "|ribbed smoked sheet|rss|smokehouse|dipped product|glove|catheter|natural rubber",
    # --- livestock ------------------------------------------------------------------
    "livestock_odour": "odour|odor|smell|stink|ammonia emission|ammonia+air|barn exhaust"
    "|exhaust air|air scrubber|biotrickling|biofilter+air|neighbours+complain"
    "|villagers+complain|complaint+smell|flies|manure handling",
    "animal_feed": "feed+expensive|fishmeal+expensive|feed price|shrimp feed|fish feed"
    "|animal feed|feed formulation|feeding protocol"
    "|feeding+fish|fcr|feed conversion|aquafeed|fishmeal|fish meal|insect meal"
    "|pellet feed|feed mill|feed cost|silage|feed ingredient",
    # --- post-harvest and food processing ---------------------------------------------
    "crop_drying": "dry+crops|dry+harvest|dry+grain|wet+grain|mould+store|dry+chips|dryer"
    "|drying|dehydration|dehydrate|dehumidification|dehumidifier"
    "|moisture content|sun drying|drying yard|solar dryer|kiln|dry+quickly|dry+faster"
    "|rot+rain|mould+rain|mold+rain|spoil+rain|wet season+spoil|wet+harvest|tunnel dryer"
    "|batch dryer|heat pump dryer|moisture+reduce|sấy|อบแห้ง|pengeringan|烘干|干燥",
    "grain_storage": "weevils|insects+sacks|stored+beans|stored+rice|store+insects|storage pest"
    "|insect infestation|fumigant|fumigation|hermetic|phosphine"
    "|insect+storage|weevil|bruchid|beetle+grain|warehouse+insect|silo|grain storage"
    "|store+months|storage loss|stored grain|bags+insects",
    "rice_milling": "rice milling|rice mill|milling+rice|milling+paddy|head rice|broken rice"
    "|brokens|whitening"
    "|polishing|husking+paddy|husker|dehusk|huller|break+rice|grains+crack|grains+break"
    "|milling yield|rice+break",
    "grain_quality_sorting": "colour sorter|color sorter|optical sorting|sorting"
    "|foreign matter|discoloured|chalky|sorter|grade+grain",
    "shelf_life_postharvest": "goes bad|go bad|spoils+quickly|rots+days|short+shelf|turns+brown"
    "|overripe|soft+arrive|spoil+days|shelf life|spoilage|spoil|rot|perishable|decay|postharvest"
    "|post-harvest|ripening|browning|weight loss|edible coating|coating+fruit"
    "|controlled atmosphere|modified atmosphere|ethylene|marketable life|keep+fresh"
    "|fruit+rot|fruit+spoil|losses+transport|days+market|storage life|fresh+longer",
    "cold_chain": "reefer|refrigerated|refrigeration|cold chain|cold storage|cold room"
    "|chilled|chilling|freezer|sea freight|container shipping|sea shipment|long shipment",
    "fruit_maturity": "ripeness|maturity|immature|unripe|dry matter|dry-matter|harvest index"
    "|non-destructive|nir|near-infrared|too+early+cut|immature+export|knock|knocker"
    "|ripe+test|maturity index|cut+early|harvest+too early",
    "food_fermentation": "fermentation|fermented|ferment|starter culture|starter|lactic acid"
    "|lactobacillus|yeast|inoculum|rhizopus|tempeh|fermentation box|pickled|golden flower"
    "|eurotium|pile fermentation|ragi",
    "food_microbial_safety": "food poisoning|germs|contaminated food|rejected+bacteria"
    "|bacteria+reject|pasteurization|pasteurisation|sterilization|sterilisation"
    "|salmonella|e coli|coliform|microbial load|log reduction|pathogen|contamination"
    "|food poisoning|bacteria+food|high pressure processing|hpp|hygiene|food safety"
    "|vapour heat|vapor heat|steam treatment|haccp|cold pasteurization",
    "mycotoxin": "aflatoxin|mycotoxin|mould toxin|mold toxin|mold+maize|mould+maize"
    "|fungus+grain|toxin+feed|toxin+grain|ochratoxin",
    "fruit_vegetable_processing": "fruit processing|dried fruit|freeze drying|freeze-dried"
    "|freeze dry|snack|puree|pulp|juice|surplus fruit|grade b|unsold+fruit|fruit+waste"
    "|value-added|value added|processed fruit|chips|dried mango|slices",
    "beverages": "coconut water|juice|beverage|drink|bottled|bottle",
    "food_processing_line": "processing line|production line|food processing|plant design"
    "|turnkey|turn-key|processing plant|factory line",
    "starch_processing": "starch|starch extraction|hydrocyclone|rasping|flash drying"
    "|tapioca starch|native starch",
    "vegetable_oil": "oil pressing|screw press|sesame oil|edible oil|crude oil+refin"
    "|degumming|deodoriz|bleaching+oil|free fatty acid|fatty acid|oil quality|oil refining",
    "byproduct_valorisation": "by-product|rice straw|straw+burn|stubble|byproduct|residue"
    "|valorization|valorisation"
    "|waste+value|value+waste|waste+sell|turn+waste|upcycl|side stream|processing waste",
    # --- aquaculture and marine ---------------------------------------------------------
    "aqua_water_quality": "water quality|dissolved oxygen|ammonia+pond|nitrite|alkalinity"
    "|aeration|aerator|biofloc|pond water|ph+pond|ph swing|die+rain|death+rain|rain+pond"
    "|mortality+rain|heavy rain+pond|algae bloom|plankton|turbid|murky|water+turns green"
    "|buffer|liming+pond|sudden+death+pond|pond+smell|total ammonia nitrogen|tan|vibrio"
    "|probiotic|water treatment+pond|pond+oxygen|gasping|pond bottom",
    "aqua_disease": "shrimp+sick|fish+sick|disease+outbreak+farm|prawns+sick|white spot|wssv"
    "|ahpnd|early mortality|ehp|enterocytozoon|vibrio"
    "|shrimp+die|prawn+die|shrimp+death|mass mortality|disease+pond|sick+fish|fish+die"
    "|pond+disease|isothermal|loop-mediated|pcr+shrimp|survival rate|survival|mortality"
    "|diagnostic kit"
    "|diagnostics+pond",
    "aqua_intensification": "intensification|raceway|stocking density|recirculating"
    "|recirculation|ras|biofilter|zero discharge|zero-discharge|pond+yield|more fish"
    "|yield+pond|existing pond|limited+land|limited+water|without more water|water recirculation"
    "|in-pond|airlift",
    "hatchery_seed": "seed+shortage|fingerlings+scarce|juveniles+wild|wild+seed|hatchery|larvae"
    "|larval|broodstock|fingerling|spat|seed production"
    "|juvenile|post-larvae|fry|spawning|nursery system|seedstock|triploid|nursing|larval rearing"
    "|settlement tile",
    "offshore_cage": "cage|net pen|offshore|typhoon|storm+cage|mooring|wave|exposed site"
    "|storm+damage|waves+destroy|typhoon+destroy|typhoon+loss|sea farming|mariculture",
    "seaweed_health": "ice-ice|ice ice|thalli+white|thallus+white|seaweed+white"
    "|seaweed+disintegrat|thalli+disintegrat|epiphyte|seaweed+die|seaweed+yield|warm water"
    "|warmer water|seedstock|seedling+seaweed|carrageenan yield",
    "seaweed_processing": "agar|carrageenan|hydrocolloid|alginate|gel strength|seaweed processing",
    "fish_byproducts": "viscera|fish head|fish skin|fish waste|offal|trimming|fish oil"
    "|collagen|gelatin|omega-3|fish by-product|fish silage|scale+fish",
    "fish_catch_preservation": "ice making|ice machine|ice plant|flake ice|block ice"
    "|fish+spoil|catch+spoil|chill+fish|fish+ice|landing site|fishing port",
    "vessel_tracking": "vessel tracking|boat tracking|vms|ais|vessel monitoring|boat+lost"
    "|fishermen+missing|sos|track+boat|fishing boat|fishing vessel|catch logbook",
    "reef_restoration": "reef restoration|coral restoration|coral bleaching|coral cover"
    "|coral spawning|larval seeding|reef+degraded|reef+dead|reef rehabilitation|reef+damag",
    "coastal_protection": "waves+eat|sea+eating+land|shore+retreat|mangrove|coastal erosion"
    "|shoreline|mudflat|coast+erode"
    "|land+washed away|sediment trapping|breakwater|coastline|seawall|tidal",
}
